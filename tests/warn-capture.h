/*
 * warn-capture.h: the warnings the agent logs, kept for a test's checks.
 * Install with log_set_sink(capture, NULL); read warned.n and warned.text.
 */
#ifndef MCPSIG_WARN_CAPTURE_H
#define MCPSIG_WARN_CAPTURE_H

#include <stdio.h>
#include <string.h>

#include "log.h"

static struct {
  size_t n;
  char text[16384];
} warned;

static void capture(const struct log_record *rec, void *userdata) {
  (void)userdata;
  if (rec->priority > LOG_WARNING)
    return;
  size_t used = strlen(warned.text);
  snprintf(warned.text + used, sizeof(warned.text) - used, "%s\n", rec->message);
  warned.n++;
}

static void warned_clear(void) {
  warned.n = 0;
  warned.text[0] = '\0';
}

#endif
