#ifndef CFUZZERDRIVER_H
#define CFUZZERDRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry point for programs with their own `main` (compiler-rt `FuzzerDriver.cpp`,
/// https://llvm.org/docs/LibFuzzer.html#using-libfuzzer-as-a-library): parses libFuzzer's flags from
/// `argv` and calls `callback` with each input; returns the process exit status.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

/// Runs libFuzzer on `callback` with the process arguments (a C shim, since Swift cannot take the
/// address of `CommandLine`'s storage as `char ***`).
int cfuzzer_run(int argc, char **argv, int (*callback)(const uint8_t *data, size_t size));

#endif
