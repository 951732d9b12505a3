"""The voice path: features (pure), voice activity (silero VAD) and the voice-emotion model.

* :mod:`emotiond.audio.features` — to_mono, resample/Resampler (soxr), levels;
  :class:`~emotiond.audio.features.FeatureParams` is stored in
  the voice model's card so training and inference share one parameter set.
* :mod:`emotiond.audio.vad` — :class:`~emotiond.audio.vad.VoiceActivity` (streaming
  speech probability per 32 ms) and :class:`~emotiond.audio.vad.Segmenter` (pure
  utterance state machine).
* :mod:`emotiond.audio.voice_model` — :class:`~emotiond.audio.voice_model.VoiceEmotionModel`.

Nothing here opens devices or files; models come through emotiond.registry/runtime.
"""
