#ifndef FT_MPI_H
#define FT_MPI_H
#include <stddef.h>

/* OpenMPI, loaded at run time (dlopen of libmpi.so.40) only when the process was started by
 * mpirun: a build needs no MPI headers and a plain run needs no MPI library. Every call after a
 * successful ft_mpi_init works on MPI_COMM_WORLD; MPI's default error handler (errors are fatal,
 * the job goes down) stays in force. */

/* Loads the library and calls MPI_Init. Returns 0 and sets rank and size, or writes why it
 * failed into err (errlen bytes) and returns -1. */
int ft_mpi_init(int *rank, int *size, char *err, size_t errlen);
void ft_mpi_finalize(void);
/* MPI_Abort(MPI_COMM_WORLD, code): the whole job ends. */
void ft_mpi_abort(int code);
/* In-place sums and maxima over every rank. */
void ft_mpi_allreduce_sum_float(float *values, long count);
void ft_mpi_allreduce_sum_double(double *values, long count);
void ft_mpi_allreduce_max_double(double *values, long count);
/* Every rank's `count` floats (counts[r] of rank r), concatenated in rank order into out. */
void ft_mpi_allgatherv_float(const float *mine, int count, float *out, const int *counts, const int *displacements);
/* Rank root's bytes to every rank. */
void ft_mpi_bcast_bytes(void *bytes, long count, int root);

#endif
