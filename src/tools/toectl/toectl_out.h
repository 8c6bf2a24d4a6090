/*
 * toectl's output: aligned text tables and a small streaming JSON writer.
 */
#ifndef TOECTL_OUT_H
#define TOECTL_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- tables: rows of text cells, printed with every column as wide as its widest cell ---- */

#define TC_TABLE_MAXCOLS 16

struct tc_table {
  size_t ncols;
  bool right[TC_TABLE_MAXCOLS]; /* right-aligned (numbers) */
  char **cells;                 /* nrows * ncols strings, owned */
  size_t nrows, cap;
};

/* Starts a table with a header row; a name starting with '>' is a right-aligned column (the '>'
 * is not printed). Returns 0 or -1 (out of memory, too many columns). */
int tc_table_init(struct tc_table *t, size_t ncols, const char *const *header);
/* Appends a row of ncols cells (printf-style: each cell is formatted separately by the caller). */
int tc_table_add(struct tc_table *t, const char *const *cells);
/* Prints with `indent` spaces before each line and two spaces between columns; the last column
 * is not padded. */
void tc_table_print(const struct tc_table *t, FILE *f, int indent);
void tc_table_free(struct tc_table *t);

/* ---- JSON ------------------------------------------------------------------------------- */

#define TC_JSON_MAXDEPTH 16

struct tc_json {
  FILE *f;
  int depth;
  bool first[TC_JSON_MAXDEPTH]; /* nothing written yet at this depth */
};

/* `key` is the member name inside an object, NULL inside an array or at the top. */
void tc_json_init(struct tc_json *j, FILE *f);
void tc_json_obj(struct tc_json *j, const char *key);
void tc_json_obj_end(struct tc_json *j);
void tc_json_arr(struct tc_json *j, const char *key);
void tc_json_arr_end(struct tc_json *j);
void tc_json_str(struct tc_json *j, const char *key, const char *v);
void tc_json_u64(struct tc_json *j, const char *key, uint64_t v);
void tc_json_i64(struct tc_json *j, const char *key, int64_t v);
/* A number with three decimals (null for NaN or infinity). */
void tc_json_f64(struct tc_json *j, const char *key, double v);
void tc_json_bool(struct tc_json *j, const char *key, bool v);
/* The wall-clock time now as "timestamp" (RFC 3339, UTC, milliseconds) and "unix_ms" members. */
void tc_json_now(struct tc_json *j);
void tc_json_null(struct tc_json *j, const char *key);
/* Ends the document with a newline. */
void tc_json_end(struct tc_json *j);

#endif
