"""wavllm evaluation tools: task scorers (metrics) and helpers shared by the eval scripts."""
