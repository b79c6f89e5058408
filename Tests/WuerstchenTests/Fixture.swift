// Every file of the target sees the shared helpers (fixtures, expectClose, SplitMix).
@_exported import TestSupport

/// Reference tensors written by diffusers (`scripts/fixtures/*.py`).
let Fixture = Fixtures(bundle: .module)
