"""Stand-ins for the platform a Space runs on, each keeping the real one's boundary: the Hugging Face Hub's read
endpoints (`hub`) and ZeroGPU's `spaces` package (`zero_gpu/spaces`, put on PYTHONPATH). Used by
scripts/space_check.py and the tests."""
