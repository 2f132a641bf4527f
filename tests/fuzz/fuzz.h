/*
 * tests/fuzz/fuzz.h - the fuzz target's entry point, shared by the
 * libFuzzer build (make fuzz) and the corpus replay driver (make check).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef AIOLOOP_TESTS_FUZZ_H
#define AIOLOOP_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input (see fuzz-aio.c); aborts on a violation. Returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* AIOLOOP_TESTS_FUZZ_H */
