/* fuzz_config: config_load_string over arbitrary text.
 *
 * The parser reads operator files, not the network, but a crash or an
 * overflow on a malformed file (a half-written edit, a binary by mistake) is
 * still a bug. The input is copied and NUL-terminated, as config_load does.
 * Secret files named by NAME_file are opened for real; inputs that name
 * device or kernel files are skipped, since /dev/stdin or a tty would block. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct config cfg; /* a few hundred KiB: not on the stack */
  static struct config_errors errs;
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  if (strstr(text, "/dev") || strstr(text, "/proc") || strstr(text, "/sys")) {
    free(text);
    return 0;
  }
  if (config_load_string(&cfg, "fuzz.conf", text, &errs) == 0 && errs.count != 0)
    abort(); /* success must mean no errors */
  if (errs.count && !strstr(errs.text, "fuzz.conf"))
    abort(); /* every error names the file */
  free(text);
  return 0;
}
