"""One construct per concern of the fan-out / fan-in pipeline."""
