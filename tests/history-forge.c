/*
 * history-forge: rewrites a binding record as an agent from before the
 * history cap would have left it after many rotations, for tests/history.sh.
 *
 *   history-forge FILE N          N older keyids before the retired ones,
 *                                 and no retired_dropped count
 *   history-forge FILE N --note B the same, plus a field of B bytes that is
 *                                 not history (damage the agent must refuse)
 *
 * Prints the new size of the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record-edit.h"

int main(int argc, char **argv) {
  if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--note") == 0)) {
    fprintf(stderr, "usage: history-forge FILE N [--note BYTES]\n");
    return 2;
  }
  if (sodium_init() < 0)
    return 1;
  size_t note_len = argc == 5 ? strtoul(argv[4], NULL, 10) : 0;
  char *note = note_len ? malloc(note_len) : NULL;
  if (note_len && !note)
    return 1;
  if (note)
    memset(note, 'x', note_len);
  struct edit edits[2] = { { .key = "retired_dropped", .kind = EDIT_DROP } };
  size_t n = 1;
  if (note)
    edits[n++] = (struct edit){ .key = "note", .kind = EDIT_STR, .str = note, .str_len = note_len };
  struct record_edits e = { edits, n, strtoul(argv[2], NULL, 10), NULL, 0 };
  long size = record_edit(argv[1], &e);
  free(note);
  if (size < 0) {
    fprintf(stderr, "history-forge: cannot rewrite %s\n", argv[1]);
    return 1;
  }
  printf("%ld\n", size);
  return 0;
}
