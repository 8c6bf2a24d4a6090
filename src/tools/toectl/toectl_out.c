/*
 * toectl's output helpers (toectl_out.h).
 */
#include "toectl_out.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- tables ------------------------------------------------------------------------------ */

static int table_push(struct tc_table *t, const char *const *cells)
{
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
    if (!c)
      return -1;
    t->cells = c;
    t->cap = cap;
  }
  char **row = t->cells + t->nrows * t->ncols;
  for (size_t i = 0; i < t->ncols; i++) {
    row[i] = strdup(cells[i] ? cells[i] : "");
    if (!row[i]) {
      while (i-- > 0)
        free(row[i]);
      return -1;
    }
  }
  t->nrows++;
  return 0;
}

int tc_table_init(struct tc_table *t, size_t ncols, const char *const *header)
{
  memset(t, 0, sizeof(*t));
  if (ncols == 0 || ncols > TC_TABLE_MAXCOLS)
    return -1;
  t->ncols = ncols;
  const char *h[TC_TABLE_MAXCOLS];
  for (size_t i = 0; i < ncols; i++) {
    t->right[i] = header[i][0] == '>';
    h[i] = header[i] + (t->right[i] ? 1 : 0);
  }
  return table_push(t, h);
}

int tc_table_add(struct tc_table *t, const char *const *cells)
{
  return table_push(t, cells);
}

void tc_table_print(const struct tc_table *t, FILE *f, int indent)
{
  size_t w[TC_TABLE_MAXCOLS] = {0};
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++) {
      size_t n = strlen(t->cells[r * t->ncols + c]);
      if (n > w[c])
        w[c] = n;
    }
  for (size_t r = 0; r < t->nrows; r++) {
    fprintf(f, "%*s", indent, "");
    for (size_t c = 0; c < t->ncols; c++) {
      const char *s = t->cells[r * t->ncols + c];
      bool last = c + 1 == t->ncols;
      if (t->right[c])
        fprintf(f, "%*s", (int)w[c], s);
      else if (last)
        fputs(s, f);
      else
        fprintf(f, "%-*s", (int)w[c], s);
      if (!last)
        fputs("  ", f);
    }
    fputc('\n', f);
  }
}

void tc_table_free(struct tc_table *t)
{
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
  memset(t, 0, sizeof(*t));
}

/* ---- JSON -------------------------------------------------------------------------------- */

void tc_json_init(struct tc_json *j, FILE *f)
{
  memset(j, 0, sizeof(*j));
  j->f = f;
  j->first[0] = true;
}

static void json_string(FILE *f, const char *s)
{
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"':
      fputs("\\\"", f);
      break;
    case '\\':
      fputs("\\\\", f);
      break;
    case '\n':
      fputs("\\n", f);
      break;
    case '\t':
      fputs("\\t", f);
      break;
    default:
      /* Control characters escaped; bytes >= 0x80 also, as \u00XX (Latin-1), so the output is
       * always valid UTF-8 whatever a process name holds. */
      if (*p < 0x20 || *p >= 0x7f)
        fprintf(f, "\\u%04x", *p);
      else
        fputc(*p, f);
    }
  }
  fputc('"', f);
}

/* Separator and member name before a value. */
static void json_key(struct tc_json *j, const char *key)
{
  if (!j->first[j->depth])
    fputc(',', j->f);
  j->first[j->depth] = false;
  if (key) {
    json_string(j->f, key);
    fputc(':', j->f);
  }
}

static void json_open(struct tc_json *j, const char *key, char c)
{
  json_key(j, key);
  fputc(c, j->f);
  if (j->depth + 1 < TC_JSON_MAXDEPTH)
    j->depth++;
  j->first[j->depth] = true;
}

static void json_close(struct tc_json *j, char c)
{
  fputc(c, j->f);
  if (j->depth > 0)
    j->depth--;
}

void tc_json_obj(struct tc_json *j, const char *key)
{
  json_open(j, key, '{');
}
void tc_json_obj_end(struct tc_json *j)
{
  json_close(j, '}');
}
void tc_json_arr(struct tc_json *j, const char *key)
{
  json_open(j, key, '[');
}
void tc_json_arr_end(struct tc_json *j)
{
  json_close(j, ']');
}

void tc_json_str(struct tc_json *j, const char *key, const char *v)
{
  json_key(j, key);
  json_string(j->f, v);
}

void tc_json_u64(struct tc_json *j, const char *key, uint64_t v)
{
  json_key(j, key);
  fprintf(j->f, "%llu", (unsigned long long)v);
}

void tc_json_i64(struct tc_json *j, const char *key, int64_t v)
{
  json_key(j, key);
  fprintf(j->f, "%lld", (long long)v);
}

void tc_json_f64(struct tc_json *j, const char *key, double v)
{
  json_key(j, key);
  if (v != v || v > 1e300 || v < -1e300) /* JSON has no NaN or infinity */
    fputs("null", j->f);
  else
    fprintf(j->f, "%.3f", v);
}

void tc_json_bool(struct tc_json *j, const char *key, bool v)
{
  json_key(j, key);
  fputs(v ? "true" : "false", j->f);
}

void tc_json_null(struct tc_json *j, const char *key)
{
  json_key(j, key);
  fputs("null", j->f);
}

void tc_json_end(struct tc_json *j)
{
  fputc('\n', j->f);
}

void tc_json_now(struct tc_json *j)
{
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  char buf[48], stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, sizeof buf, "%s.%03ldZ", stamp, ts.tv_nsec / 1000000);
  tc_json_str(j, "timestamp", buf);
  tc_json_u64(j, "unix_ms", (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}
