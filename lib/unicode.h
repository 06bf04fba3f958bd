/* unicode: code point classes for the tokenizers' pre-tokenizers (the flags
 * of llama.cpp's unicode_cpt_flags, from generated Unicode tables), UTF-8
 * decoding with llama.cpp's handling of invalid bytes, and lowercasing. */
#ifndef SLUICE_UNICODE_H
#define SLUICE_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum {
	UNI_UNDEFINED = 0x001,  /* unassigned (Cn), and anything past U+10FFFF */
	UNI_NUMBER = 0x002,     /* \p{N} */
	UNI_LETTER = 0x004,     /* \p{L} */
	UNI_SEPARATOR = 0x008,  /* \p{Z} */
	UNI_MARK = 0x010,       /* \p{M}, llama.cpp's is_accent_mark */
	UNI_PUNCT = 0x020,      /* \p{P} */
	UNI_SYMBOL = 0x040,     /* \p{S} */
	UNI_CONTROL = 0x080,    /* \p{C} less Cn */
	UNI_SPACE = 0x100,      /* White_Space (PropList), llama.cpp's is_whitespace */
	UNI_LOWER = 0x200,      /* Ll */
	UNI_UPPER = 0x400,      /* Lu */
};

typedef struct uni_range { uint32_t cp; uint16_t flags; } uni_range;
typedef struct uni_pair { uint32_t cp, to; } uni_pair;
extern const uni_range uni_ranges[];   /* unicode_data.c (generated) */
extern const unsigned uni_nranges;
extern const uni_pair uni_lower[];
extern const unsigned uni_nlower;

/* Builds the constant-time lookup table (once, thread-safe); uni_flags works
 * before it, by binary search. */
void uni_init(void);
/* The UNI_* flags of cp. */
unsigned uni_flags(uint32_t cp);
static inline int uni_is_letter(uint32_t cp) { return uni_flags(cp) & UNI_LETTER; }
static inline int uni_is_number(uint32_t cp) { return uni_flags(cp) & UNI_NUMBER; }
static inline int uni_is_space(uint32_t cp) { return uni_flags(cp) & UNI_SPACE; }
static inline int uni_is_punct(uint32_t cp) { return uni_flags(cp) & UNI_PUNCT; }
static inline int uni_is_mark(uint32_t cp) { return uni_flags(cp) & UNI_MARK; }
static inline int uni_is_symbol(uint32_t cp) { return uni_flags(cp) & UNI_SYMBOL; }
static inline int uni_is_control(uint32_t cp) { return uni_flags(cp) & UNI_CONTROL; }
/* Simple lowercase mapping; cp itself when there is none. */
uint32_t uni_tolower(uint32_t cp);

/* Decodes one code point of s[0..n), n >= 1, as llama.cpp's
 * unicode_cpt_from_utf8 does: the lead byte gives the length and the
 * continuation bytes are checked, but overlong forms, surrogates and values
 * up to 0x1FFFFF are accepted. On an invalid or truncated sequence it gives
 * U+FFFD and consumes one byte (unicode_cpts_from_utf8). *len gets the bytes
 * consumed. */
uint32_t uni_decode(const uint8_t *s, size_t n, size_t *len);
/* Writes cp as UTF-8 into out (4 bytes room); returns the length, or 0 for a
 * value past U+10FFFF (llama.cpp's unicode_cpt_to_utf8 refuses those). */
size_t uni_encode(uint32_t cp, uint8_t *out);
/* The length of a UTF-8 sequence from its lead byte, as llama.cpp's
 * unicode_len_utf8 (1 for continuation and invalid bytes). */
static inline size_t uni_len_lead(uint8_t c)
{
	static const uint8_t lens[16] = { 1,1,1,1,1,1,1,1, 1,1,1,1, 2,2, 3, 4 };
	return lens[c >> 4];
}

#endif
