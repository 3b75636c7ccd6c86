"""Load a SavedModel in a fresh Python process that imports only TensorFlow.

Tests use this to prove an export stands on its own: no rnn_keras, no apps, no
Keras custom objects registered, exactly what TF Serving sees.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

_LOADER = r"""
import json, sys
import numpy as np
import tensorflow as tf

export_dir, signature, inputs_path, outputs_path = sys.argv[1:5]
assert "rnn_keras" not in sys.modules and "apps" not in sys.modules
loaded = tf.saved_model.load(export_dir)
function = loaded.signatures[signature]
with np.load(inputs_path, allow_pickle=False) as data:
    inputs = {name: tf.constant(data[name]) for name in data.files}
outputs = function(**inputs)
arrays = {name: value.numpy() for name, value in outputs.items()}
arrays = {n: (v.astype(np.bytes_) if v.dtype == object else v) for n, v in arrays.items()}
np.savez(outputs_path, **arrays)
forbidden = sorted(name for name in sys.modules if name.split(".")[0] in ("rnn_keras", "apps"))
print(json.dumps({"project_modules_imported": forbidden}))
"""


def call_saved_model_in_fresh_process(export_dir, inputs, signature="serving_default"):
    """Calls `signature` of the SavedModel at `export_dir` in a new process.

    Args:
        export_dir: directory holding `saved_model.pb`.
        inputs: dict of input name to NumPy array (strings as `np.array([...], dtype=object)`
            or bytes arrays).
        signature: the signature key.

    Returns:
        dict of output name to NumPy array (string outputs as arrays of bytes).
    """
    with tempfile.TemporaryDirectory() as scratch:
        inputs_path = os.path.join(scratch, "inputs.npz")
        outputs_path = os.path.join(scratch, "outputs.npz")
        arrays = {}
        for name, value in inputs.items():
            value = np.asarray(value)
            if value.dtype == object:
                value = np.array([v.encode() if isinstance(v, str) else v for v in value.ravel()])
                value = value.reshape(np.shape(inputs[name]))
            arrays[name] = value
        np.savez(inputs_path, **arrays)
        environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        # Drop the project from the path so an accidental import would fail loudly.
        environment.pop("PYTHONPATH", None)
        result = subprocess.run(
            [sys.executable, "-c", _LOADER, str(export_dir), signature, inputs_path, outputs_path],
            capture_output=True,
            text=True,
            env=environment,
            cwd=scratch,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"Fresh-process load of {export_dir} failed:\n{result.stderr[-4000:]}"
            )
        report = json.loads(result.stdout.strip().splitlines()[-1])
        if report["project_modules_imported"]:
            raise AssertionError(f"Project modules were imported: {report}")
        with np.load(outputs_path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
