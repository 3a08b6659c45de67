// Loads opencv.js (the in-browser tracker's library) once; resolves {cv}.
//
// spec: {js, wasm} from the page config: our own build (scripts/build-opencv-js.sh: only what the tracker calls), its
// WebAssembly in a file of its own, fetched and compiled while it streams in (WebAssembly.instantiateStreaming, off
// the main thread). Resolved with a box: an Emscripten module may be a thenable, which a promise would adopt.

let loading = null;

function addScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.async = true;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`${src} failed to load`));
    document.head.appendChild(script);
  });
}

async function instantiate(wasmUrl, imports, done) {
  let result;
  try {
    result = await WebAssembly.instantiateStreaming(fetch(wasmUrl, { credentials: "same-origin" }), imports);
  } catch (err) {
    // a server or cache that does not say application/wasm: compile from the bytes instead
    const bytes = await (await fetch(wasmUrl, { credentials: "same-origin" })).arrayBuffer();
    result = await WebAssembly.instantiate(bytes, imports);
  }
  done(result.instance, result.module);
}

export function loadOpenCV(spec) {
  if (loading) return loading;
  loading = (async () => {
    // The build (MODULARIZE'd, wrapped in a UMD by OpenCV's make_umd.py) runs its factory on the global `Module`
    // when the script loads and defines window.cv as the ready promise: the functions land on `Module` itself.
    // We instantiate the wasm ourselves; onRuntimeInitialized says the bindings are usable.
    let initialized, failed;
    const ready = new Promise((resolve, reject) => { initialized = resolve; failed = reject; });
    const module = {
      instantiateWasm(imports, done) {
        instantiate(spec.wasm, imports, done).catch(failed);
        return {};
      },
      onRuntimeInitialized() { initialized(); },
      onAbort(what) { failed(new Error(`opencv.js aborted: ${what}`)); },
    };
    window.Module = module;
    await addScript(spec.js);
    await ready;
    return { cv: module };
  })();
  return loading;
}
