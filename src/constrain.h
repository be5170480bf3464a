/* constrain.h: constrained decoding over a closed set of strings: the tag vocabulary (tags.txt)
 * and the links index (links.txt), so that the student can only write tags it was trained on and
 * URLs that exist in the index.
 *
 * The output language of a constraint is
 *     ITEM (SEP ITEM)*      (or nothing at all when min_items is 0)
 * followed by end of generation, with between min_items and max_items items, each one string of
 * the set, no item twice, and optionally a required first item (the tags' language, which need
 * not be in the set). Tags use SEP ", " (1-6 items), links "\n" (0-3 items), as tasks.h writes
 * completions.
 *
 * How: the items are kept sorted, so the strings that start with a prefix form one range of the
 * array: that range is a node of the item trie, and stepping a byte narrows it by binary search.
 * The tokens whose text could ever appear (every byte in the items' or the separator's alphabet)
 * are put in a byte trie of token texts, the token trie. The allowed next tokens are then found by
 * walking the token trie and the item trie together from the current state, pruning a branch as
 * soon as the item trie rejects its byte, so the cost is the number of token-trie nodes that stay
 * on a valid path, not the vocabulary size. A branch into a range whose items are all used up is
 * pruned too, so every allowed token can be completed to a valid output (given the single-byte
 * tokens that byte-level and SentencePiece vocabularies have).
 *
 * A constraint is read-only once built: many decoding threads may share one, each with its own
 * sm_constraint_state.
 */
#ifndef SM_CONSTRAIN_H
#define SM_CONSTRAIN_H

#include "snipmeta.h"
#include "tokenizer.h"

typedef struct sm_constraint sm_constraint;

#define SM_CONSTRAINT_MAX_ITEMS 8

/* Builds a constraint over n strings (copied; duplicates and empty strings dropped, and strings
 * that hold the separator's first byte or a byte < 0x20 are refused), for the tokens of tok,
 * which must outlive it. sep: the separator between items; 0 <= min_items <= max_items <=
 * SM_CONSTRAINT_MAX_ITEMS. Returns a new constraint the caller frees with sm_constraint_free, or
 * NULL with *err set (SM_EINVAL for a bad item or limit, SM_ENOMEM). */
sm_constraint *sm_constraint_new(const sm_tokenizer *tok, const char *const *items, int n, const char *sep,
                                 int min_items, int max_items, sm_error *err);
/* The same over a file of one item per line (blank lines and surrounding spaces ignored), such
 * as `snipmeta dataset`'s tags.txt and links.txt. Errors name the file and line (SM_EIO,
 * SM_EFORMAT, SM_ENOMEM). */
sm_constraint *sm_constraint_load(const sm_tokenizer *tok, const char *path, const char *sep, int min_items,
                                  int max_items, sm_error *err);
void sm_constraint_free(sm_constraint *c); /* NULL-safe */

/* Items in the set, and item i (sorted order). */
int sm_constraint_size(const sm_constraint *c);
const char *sm_constraint_item(const sm_constraint *c, int i);
/* Bytes the constraint holds (items, token trie), for memory reports. */
size_t sm_constraint_bytes(const sm_constraint *c);

/* Where one decoding stands: plain data, copied by value. */
typedef struct {
    int phase;          /* 0 inside an item, 1 inside a separator, 2 dead */
    int lo, hi;         /* the item range that matches the current item's bytes (set mode) */
    int depth;          /* bytes of the current item, or of the separator, so far */
    int n_items;        /* items completed */
    int items[SM_CONSTRAINT_MAX_ITEMS]; /* their indices (-2: the required first item, not in the set) */
} sm_constraint_state;

/* The state before the first byte. first: the required first item (NULL or "": none); it must
 * outlive the state's use and hold no separator byte. */
void sm_constraint_start(const sm_constraint *c, const char *first, sm_constraint_state *s);
/* Advances s over len bytes; returns 0, or -1 (s then dead) when they leave the language. */
int sm_constraint_advance(const sm_constraint *c, const char *first, sm_constraint_state *s, const char *bytes, int len);
/* Whether the output may end here (end of generation allowed). */
int sm_constraint_accepts(const sm_constraint *c, const char *first, const sm_constraint_state *s);

/* The tokens that may come next from s: writes their ids to allowed (capacity: the vocabulary
 * size) and returns their count; *can_end says whether ending here is allowed too. */
int sm_constraint_allowed(const sm_constraint *c, const char *first, const sm_constraint_state *s, int *allowed,
                          int *can_end);

#endif
