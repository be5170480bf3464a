/* llama2c.h: reading llama2.c's checkpoint and tokenizer files and converting them to a GGUF
 * model that llama.cpp (and sm_model_load) reads as general.architecture=llama.
 *
 * Checkpoint (legacy version 0, as llama2.c's run.c reads it; all little-endian):
 *   header   7 x int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
 *            vocab_size < 0 means an unshared classifier (wcls present), |vocab_size| tokens
 *   float32  token_embedding (vocab, dim)
 *            rms_att (n_layers, dim)
 *            wq (n_layers, dim, dim)            rows are outputs: W (out, in)
 *            wk (n_layers, kv_dim, dim)         kv_dim = n_kv_heads * dim / n_heads
 *            wv (n_layers, kv_dim, dim)
 *            wo (n_layers, dim, dim)
 *            rms_ffn (n_layers, dim)
 *            w1 (n_layers, hidden_dim, dim)     the gate
 *            w2 (n_layers, dim, hidden_dim)     the down projection
 *            w3 (n_layers, hidden_dim, dim)     the up projection
 *            rms_final (dim)
 *            freq_cis_real, freq_cis_imag (seq_len, head_size / 2) each, unused
 *            wcls (vocab, dim), only when unshared
 *   and nothing after. The weights are in Meta's layout (RoPE on adjacent pairs), which is
 *   GGUF 'llama''s layout, so no q/k permutation is needed.
 * Tokenizer (tokenizer.bin): int32 max_token_length; then per token: float32 score, int32 length,
 *   `length` bytes (at most max_token_length). llama2.c writes SentencePiece's U+2581 as ' ' and
 *   BOS / EOS as "\n<s>\n" / "\n</s>\n".
 */
#ifndef SM_LLAMA2C_H
#define SM_LLAMA2C_H

#include "snipmeta.h"

typedef struct {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier; /* 1: the output projection is token_embedding */
} sm_llama2c_config;

/* Converts llama2.c's checkpoint `ckpt_path` and its `tokenizer_path` into a GGUF file at
 * out_path (f32 tensors, llama.* metadata, a tokenizer.ggml.model=llama vocabulary with scores
 * and token types, BOS 1, EOS 2, UNK 0). Fills *cfg (may be NULL) with the checkpoint's header.
 * Returns 0, or SM_EIO / SM_EFORMAT / SM_ENOMEM with *err naming the file, the offset and what
 * was expected. */
int sm_llama2c_convert(const char *ckpt_path, const char *tokenizer_path, const char *out_path,
                       sm_llama2c_config *cfg, sm_error *err);

#endif
