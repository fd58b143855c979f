"""Using a trained model: transcribing recordings (offline or streaming) and exporting the
model.

    from asrkit.inference import Transcriber
    transcriber = Transcriber.load("exp/conformer")          # or an `asrkit export` directory
    for result in transcriber.transcribe(["talk.wav", "call.flac"]):
        print(result.text, [(w.text, w.start, w.end) for w in result.words])

What lives where:

- ``transcriber``: the API (load once, transcribe paths or arrays, batched);
- ``recording``, ``segments``, ``windows``: reading any audio in blocks at the model's rate,
  mixed down, cut into overlapping windows at pauses;
- ``token_times``, ``alignment``, ``emission_times``, ``words``, ``stitching``, ``result``:
  token and word times (``token_times`` chooses the source by the search: CTC forced
  alignment or a transducer search's emission frames), words from units, windows stitched
  into one transcript;
- ``transcribe_files``, ``formats``, ``audio_files``, ``progress``: what ``asrkit
  transcribe`` reads and writes (``transcribe_files``: its loop over the files, writing each
  result and counting failures);
- ``streaming``, ``streaming_search``, ``streaming_files``: streaming recognition
  (StreamingRecognizer), the searches it carries over chunks, and a file fed to it in
  pieces (``asrkit transcribe --streaming``);
- ``export``, ``model_graphs``, ``transducer_graphs``, ``encoder_chunk_graph``,
  ``traceable``: ``asrkit export`` to ONNX or TorchScript (the CTC/attention side's graphs,
  the transducer's, the streaming encoder step, traceable forms of two CPU kernels);
- ``exported_dir``, ``exported_model``, ``exported_transducer``,
  ``exported_encoder_chunk``: the exported directory read back and run with onnxruntime /
  TorchScript.
"""

__all__ = ["Transcriber"]


def __getattr__(name: str):
    """``Transcriber`` on first use (PEP 562): importing a light module of this package
    (``formats``, ``result``) does not load torch, Hydra and the decoding code."""
    if name == "Transcriber":
        from asrkit.inference.transcriber import Transcriber

        return Transcriber
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
