// OpenBLAS's CBLAS interface plus its extensions (openblas_set_num_threads, openblas_get_corename).
// Debian's libopenblas-dev installs cblas.h through the alternatives system in the multiarch include dir.
#include <cblas.h>
