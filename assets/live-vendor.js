// The live model's third-party code, bundled by esbuild (`make assets`) into one classic script,
// _static/live/vendor.js: classic, not an ES module, because a module cannot be loaded from a
// file:// page. book/_theme/live/tinygpt-live.js reads these from window.tinygptVendor.
import * as ort from "onnxruntime-web/wasm"; // ONNX Runtime, WebAssembly only (one thread)
import { Tiktoken } from "js-tiktoken/lite"; // GPT-2's BPE
import gpt2 from "js-tiktoken/ranks/gpt2";

window.tinygptVendor = { ort, Tiktoken, gpt2 };
