#define _GNU_SOURCE
#include "ft_mpi.h"
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* OpenMPI's handles are the addresses of its predefined objects (mpi.h: MPI_COMM_WORLD is
 * &ompi_mpi_comm_world, MPI_FLOAT &ompi_mpi_float, ...), so dlsym gives them directly. */
typedef void *handle;
static handle comm_world, type_float, type_double, type_byte, op_sum, op_max;
static int (*p_init)(int *, char ***);
static int (*p_finalize)(void);
static int (*p_abort)(handle, int);
static int (*p_rank)(handle, int *);
static int (*p_size)(handle, int *);
static int (*p_allreduce)(const void *, void *, int, handle, handle, handle);
static int (*p_allgatherv)(const void *, int, handle, void *, const int *, const int *, handle, handle);
static int (*p_bcast)(void *, int, handle, int, handle);
#define FT_MPI_IN_PLACE ((void *)1)

int ft_mpi_init(int *rank, int *size, char *err, size_t errlen) {
    /* RTLD_GLOBAL: OpenMPI's own plugins (dlopened by libmpi) resolve libmpi's symbols */
    const char *names[] = {"libmpi.so.40", "libmpi.so", NULL};
    void *lib = NULL;
    for (int i = 0; names[i] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        snprintf(err, errlen, "started by mpirun, but OpenMPI's library could not be loaded (%s): install openmpi-bin and libopenmpi-dev (scripts/setup.sh does)", dlerror());
        return -1;
    }
#define SYM(var, name) do { *(void **)(&var) = dlsym(lib, name); \
        if (!var) { snprintf(err, errlen, "%s lacks %s: flowtune needs OpenMPI (4.x)", names[0], name); return -1; } } while (0)
    SYM(p_init, "MPI_Init"); SYM(p_finalize, "MPI_Finalize"); SYM(p_abort, "MPI_Abort");
    SYM(p_rank, "MPI_Comm_rank"); SYM(p_size, "MPI_Comm_size");
    SYM(p_allreduce, "MPI_Allreduce"); SYM(p_allgatherv, "MPI_Allgatherv"); SYM(p_bcast, "MPI_Bcast");
    SYM(comm_world, "ompi_mpi_comm_world"); SYM(type_float, "ompi_mpi_float"); SYM(type_double, "ompi_mpi_double");
    SYM(type_byte, "ompi_mpi_byte"); SYM(op_sum, "ompi_mpi_op_sum"); SYM(op_max, "ompi_mpi_op_max");
#undef SYM
    if (p_init(NULL, NULL) != 0) { snprintf(err, errlen, "MPI_Init failed"); return -1; }
    p_rank(comm_world, rank);
    p_size(comm_world, size);
    return 0;
}

void ft_mpi_finalize(void) { if (p_finalize) p_finalize(); }
void ft_mpi_abort(int code) { if (p_abort) p_abort(comm_world, code); }

/* counts above INT_MAX go in pieces (MPI counts are int) */
static void allreduce(void *values, long count, size_t size, handle type, handle op) {
    char *p = values;
    while (count > 0) {
        int n = count > INT_MAX ? INT_MAX : (int)count;
        p_allreduce(FT_MPI_IN_PLACE, p, n, type, op, comm_world);
        p += (size_t)n * size; count -= n;
    }
}
void ft_mpi_allreduce_sum_float(float *v, long count) { allreduce(v, count, sizeof(float), type_float, op_sum); }
void ft_mpi_allreduce_sum_double(double *v, long count) { allreduce(v, count, sizeof(double), type_double, op_sum); }
void ft_mpi_allreduce_max_double(double *v, long count) { allreduce(v, count, sizeof(double), type_double, op_max); }

void ft_mpi_allgatherv_float(const float *mine, int count, float *out, const int *counts, const int *displacements) {
    p_allgatherv(mine, count, type_float, out, counts, displacements, type_float, comm_world);
}

void ft_mpi_bcast_bytes(void *bytes, long count, int root) {
    char *p = bytes;
    while (count > 0) {
        int n = count > INT_MAX ? INT_MAX : (int)count;
        p_bcast(p, n, type_byte, root, comm_world);
        p += n; count -= n;
    }
}
