// Compiles every .py under a folder to CPython 3.13 byte code (__pycache__/*.cpython-313.pyc), using Pyodide:
// CPython 3.13 built for WebAssembly. Byte code does not depend on the platform, only on the Python minor
// version, so this gives the Lambda python3.13 runtime the .pyc files it cannot write itself (/opt is
// read-only there). Unchecked-hash .pyc: used without comparing source timestamps, which the layer's zip
// does not preserve. Prints one JSON line: {"python": ..., "magic": ..., "compiled": n, "failed": [...]}.
const path = require("path");
const { loadPyodide } = require("pyodide");

async function main() {
  const target = path.resolve(process.argv[2]);
  const pyodide = await loadPyodide();
  pyodide.FS.mkdirTree("/layer");
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: target }, "/layer");
  const report = pyodide.runPython(`
import importlib.util, json, os, py_compile, sys

compiled, failed = 0, []
for root, dirs, files in os.walk("/layer"):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    for name in sorted(files):
        if not name.endswith(".py"):
            continue
        source = os.path.join(root, name)
        try:
            py_compile.compile(source, cfile=importlib.util.cache_from_source(source), doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            compiled += 1
        except py_compile.PyCompileError as exc:
            failed.append({"file": os.path.relpath(source, "/layer"), "error": str(exc.exc_value)[:200]})
json.dumps({"python": sys.version.split()[0], "cache_tag": sys.implementation.cache_tag,
            "magic": importlib.util.MAGIC_NUMBER.hex(), "compiled": compiled, "failed": failed})
`);
  console.log(report);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
