/* SPDX-License-Identifier: MIT */
/* Fuzz target: backend/redpanda_json.c, see fuzz_rp.h. */
#define RP_TARGET 4
#include "fuzz_rp.h"
