"""llama-quantize through llama-cpp-python (`llama_model_quantize`, default parameters, no
imatrix), for benches/quant_vs_llama_cpp.sh. usage: python llama_quantize.py IN.gguf OUT.gguf
TYPE THREADS, TYPE a llama-quantize name such as Q4_K_M."""
import ctypes
import sys

import llama_cpp

FTYPES = {"Q8_0": 7, "Q4_K_M": 15, "Q6_K": 18, "Q5_K_M": 17, "Q4_0": 2, "Q2_K": 10}

src, dst, mix, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = FTYPES[mix]
params.nthread = threads
quiet = llama_cpp.llama_log_callback(lambda level, text, data: None)
llama_cpp.llama_log_set(quiet, ctypes.c_void_p(0))
sys.exit(llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)))
