/* SPDX-License-Identifier: MIT */
/* audit_escape (fs/audit.c) against a byte-at-a-time reference of the
 * documented rule (docs/audit.md): every byte <= ' ', >= 0x7f, or one of
 * % = " ' \ becomes %XX; a value longer than its cap is cut at a whole
 * byte or escape and ends in "…" (the mark counted in the cap).  Random
 * values with plain runs, escapes and cuts at every cap. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "audit.h"
#include "harness.h"

static bool reference_needs_escape(unsigned char ch)
{
	return ch <= ' ' || ch == '%' || ch == '=' || ch == '"' || ch == '\'' || ch == '\\' ||
	       ch >= 0x7f;
}

static size_t reference_escape(char *out, size_t size, const char *s, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	const size_t mlen = strlen(TRUNC_MARK);
	size_t used = 0, keep = 0;
	if (cap > size - 1)
		cap = size - 1;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		size_t w = reference_needs_escape(ch) ? 3 : 1;
		if (used + w > cap) {
			used = keep;
			if (used + mlen <= cap) {
				memcpy(out + used, TRUNC_MARK, mlen);
				used += mlen;
			}
			break;
		}
		if (w == 3) {
			out[used++] = '%';
			out[used++] = hex[ch >> 4];
			out[used++] = hex[ch & 15];
		} else {
			out[used++] = (char)ch;
		}
		if (used + mlen <= cap)
			keep = used;
	}
	out[used] = '\0';
	return used;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static unsigned next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng >> 32);
}

int main(void)
{
	static const char special[] = " %=\"'\\\x7f\x01\n\xe2\x80\xa6";
	char value[200], got[300], want[300];
	for (int round = 0; round < 20000; round++) {
		size_t len = next() % 60;
		for (size_t i = 0; i < len; i++) {
			unsigned k = next() % 10;
			value[i] = k < 7 ? (char)('a' + next() % 26)
			                 : special[next() % (sizeof(special) - 1)];
		}
		value[len] = '\0';
		size_t cap = next() % 70;
		size_t size = next() % 4 ? sizeof(got) : 1 + next() % 40; /* a short buffer too */
		size_t g = audit_escape(got, size, value, cap);
		size_t w = reference_escape(want, size, value, cap);
		CHECK_EQ(g, w);
		if (strcmp(got, want) != 0) {
			fprintf(stderr, "value \"%s\" cap %zu size %zu: \"%s\" != \"%s\"\n", value,
			        cap, size, got, want);
			CHECK(false);
		}
	}
	/* appending (the escape starts where the line is): audit_exe puts
	 * comm= after exe= */
	for (int round = 0; round < 5000; round++) {
		char exe[80], comm[40];
		size_t el = next() % 70, cl = 1 + next() % 30;
		for (size_t i = 0; i < el; i++)
			exe[i] = next() % 5 ? (char)('a' + next() % 26)
			                    : special[next() % (sizeof(special) - 1)];
		exe[el] = '\0';
		for (size_t i = 0; i < cl; i++)
			comm[i] = next() % 5 ? (char)('a' + next() % 26)
			                     : special[next() % (sizeof(special) - 1)];
		comm[cl] = '\0';
		struct caller c = { .exe = exe, .comm = comm };
		size_t size = next() % 2 ? sizeof(got) : 8 + next() % 200;
		audit_exe(&c, got, size);
		size_t w = reference_escape(want, size, exe, AUDIT_CAP_EXE);
		if (w + 7 < size) {
			memcpy(want + w, " comm=", 6);
			w += 6;
			reference_escape(want + w, size - w, comm, AUDIT_CAP_COMM);
		}
		if (strcmp(got, want) != 0) {
			fprintf(stderr, "exe \"%s\" comm \"%s\" size %zu: \"%s\" != \"%s\"\n", exe,
			        comm, size, got, want);
			CHECK(false);
		}
		CHECK(strlen(got) < size);
	}
	/* the figures in docs/audit.md */
	audit_escape(got, sizeof(got), "/opt/my tool", AUDIT_CAP_EXE);
	CHECK(strcmp(got, "/opt/my%20tool") == 0);
	return harness_result("test_audit_escape");
}
