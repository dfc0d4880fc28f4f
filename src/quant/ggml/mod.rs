//! ggml block types (legacy and k-quants), bit-exact with llama.cpp reference quantizers.
