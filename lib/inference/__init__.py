"""The plan (tuned config), the inference pipeline's stages and their timing."""
