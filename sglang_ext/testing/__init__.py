"""Helpers the test-suite shares (pristine sglang tree, server processes)."""
