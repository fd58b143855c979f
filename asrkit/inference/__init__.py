"""Using a trained model: transcribing recordings and exporting the model.

    from asrkit.inference import Transcriber
    transcriber = Transcriber.load("exp/conformer")          # or an `asrkit export` directory
    for result in transcriber.transcribe(["talk.wav", "call.flac"]):
        print(result.text, [(w.text, w.start, w.end) for w in result.words])

What lives where:

- ``transcriber``: the API (load once, transcribe paths or arrays, batched);
- ``recording``, ``segments``, ``windows``: reading any audio in blocks at the model's rate,
  mixed down, cut into overlapping windows at pauses;
- ``alignment``, ``emission_times``, ``words``, ``stitching``, ``result``: token and word
  times from CTC forced alignment or from a transducer search's emission frames, words
  from units, windows stitched into one transcript;
- ``formats``, ``audio_files``, ``progress``: what ``asrkit transcribe`` reads and writes;
- ``export``, ``traceable``, ``transducer_graphs``, ``exported_dir``, ``exported_model``,
  ``exported_transducer``: ``asrkit export`` to ONNX or TorchScript, and running the
  exported directory with onnxruntime / TorchScript.
"""

__all__ = ["Transcriber"]


def __getattr__(name: str):
    """``Transcriber`` on first use (PEP 562): importing a light module of this package
    (``formats``, ``result``) does not load torch, Hydra and the decoding code."""
    if name == "Transcriber":
        from asrkit.inference.transcriber import Transcriber

        return Transcriber
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
