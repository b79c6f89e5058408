// The libc calls the Tensor target needs that Swift's Glibc module does not export (see CKernels.h).
#include "CKernels.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

int ck_malloc_trim(void) {
#if defined(__GLIBC__)
    return malloc_trim(0);
#else
    return 0;
#endif
}
