"""Durations as a clock shows them, for progress lines and summaries (training and
transcription alike)."""


def format_duration(seconds: float) -> str:
    """1:02:03, 2:03 or 0:05."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
