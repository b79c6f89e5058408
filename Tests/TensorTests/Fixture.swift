// Every file of the target sees the shared helpers (fixtures, expectClose, SplitMix).
@_exported import TestSupport

/// Reference tensors written by PyTorch (`scripts/fixtures/*.py`), one safetensors file per area.
let Fixture = Fixtures(bundle: .module)
