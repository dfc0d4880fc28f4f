//! bitsandbytes 4-bit (NF4 / FP4) quantization and dequantization, bit-exact with bitsandbytes.
