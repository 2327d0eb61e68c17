"""What a check reads: embeddings (.npy/.npz/.parquet, validated), the serving index, the window."""
