#include <cblas.h>
// OpenBLAS extensions: thread count control (keeps BLAS threads out of our own parallel regions).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
