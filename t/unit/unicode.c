/* unit test for lib/unicode: code point classes from the generated tables
 * and UTF-8 decoding with llama.cpp's handling of invalid bytes. */
#include <string.h>

#include "tap.h"
#include "unicode.h"

static int
dec(const char *s, size_t n, uint32_t want, size_t wlen)
{
	size_t l;
	uint32_t cp = uni_decode((const uint8_t *)s, n, &l);
	return cp == want && l == wlen;
}

int
main(void)
{
	for (int pass = 0; pass < 2; pass++) {
		/* pass 0 by binary search, pass 1 through the built table */
		ok(uni_is_letter('a') && uni_is_letter(0x00e9) && uni_is_letter(0x4f60) && uni_is_letter(0x0645), "letters (pass %d)", pass);
		ok(uni_is_number('7') && uni_is_number(0x0663) && uni_is_number(0x00bd) && uni_is_number(0x2167), "numbers");
		ok(!uni_is_letter('1') && !uni_is_number('a') && !uni_is_letter(' '), "ascii classes");
		ok(uni_is_space(' ') && uni_is_space('\t') && uni_is_space('\n') && uni_is_space('\r') && uni_is_space(0x0b) &&
			uni_is_space(0x85) && uni_is_space(0xa0) && uni_is_space(0x3000) && uni_is_space(0x2028), "whitespace (White_Space)");
		ok(!uni_is_space(0x200b) && !uni_is_space(0x1c) && !uni_is_space('x'), "not whitespace: ZWSP, FS");
		ok(uni_is_punct('!') && uni_is_punct('_') && !uni_is_punct('$') && uni_is_symbol('$') && uni_is_symbol('+'), "punctuation vs symbol");
		ok(uni_is_mark(0x0301) && uni_is_mark(0x094d), "combining marks");
		ok(uni_is_control(0) && uni_is_control(0x200b) && uni_is_control(0xe000), "controls, format, private use");
		ok(uni_flags(0x0378) == UNI_UNDEFINED && uni_flags(0x110000) == UNI_UNDEFINED, "unassigned is UNDEFINED");
		ok(uni_is_symbol(0x1f600) && uni_is_letter(0x1d400) && uni_is_letter(0x20000) && uni_is_letter(0x2a6df), "planes 1 and 2");
		ok(uni_is_control(0xe0001) && uni_is_control(0x10fffd), "planes 14 and 16");
		uni_init();
	}
	ok(uni_tolower('A') == 'a' && uni_tolower(0xc9) == 0xe9 && uni_tolower(0x130) == 'i' && uni_tolower('z') == 'z', "lowercase");
	ok(dec("a", 1, 'a', 1) && dec("\xc3\xa9", 2, 0xe9, 2) && dec("\xe4\xbd\xa0", 3, 0x4f60, 3) &&
		dec("\xf0\x9f\x98\x80", 4, 0x1f600, 4), "valid UTF-8");
	ok(dec("\xff", 1, 0xfffd, 1) && dec("\x80", 1, 0xfffd, 1) && dec("\xc3", 1, 0xfffd, 1) &&
		dec("\xe2\x82", 2, 0xfffd, 1) && dec("\xc3(", 2, 0xfffd, 1), "invalid bytes: U+FFFD, one byte");
	ok(dec("\xc0\x80", 2, 0, 2) && dec("\xed\xa0\x80", 3, 0xd800, 3) && dec("\xf0\x80\x80\xaf", 4, 0x2f, 4),
		"overlong forms and surrogates decode, as in llama.cpp");
	uint8_t u[4];
	ok(uni_encode(0x20ac, u) == 3 && !memcmp(u, "\xe2\x82\xac", 3) && uni_encode(0x110000, u) == 0, "encode");
	ok(uni_len_lead('a') == 1 && uni_len_lead(0xc3) == 2 && uni_len_lead(0xe2) == 3 && uni_len_lead(0xf0) == 4 &&
		uni_len_lead(0x80) == 1, "lead byte lengths");
	return done_testing();
}
