/* fuzz_text: the input of a fuzz target as a string, the way parsers of
 * text receive it (lws hands over headers and URLs NUL-terminated). */
#ifndef GALARELAY_FUZZ_TEXT_H
#define GALARELAY_FUZZ_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* data[0..size) as a malloc'd NUL-terminated string (the caller frees), or
 * NULL without memory. A NUL inside ends the string early, as it would for
 * the parser. */
static inline char *fuzz_text(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text)
    return NULL;
  memcpy(text, data, size);
  text[size] = '\0';
  return text;
}

#endif
