// oneDNN's C API (Debian's libdnnl-dev, which ships no pkg-config file: the module map links "dnnl").
// Debian builds oneDNN with the OpenMP runtime (DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP, libgomp), so the
// thread count of its primitives is OpenMP's: the two OpenMP calls below are declared here rather than
// through <omp.h>, which comes with the compiler (gcc's libgomp headers), not with libdnnl-dev.
#include <oneapi/dnnl/dnnl.h>

void omp_set_num_threads(int num_threads);
int omp_get_max_threads(void);
