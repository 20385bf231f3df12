"""Helpers the test-suite shares: the pristine sglang tree, byte-for-byte tree snapshots."""
