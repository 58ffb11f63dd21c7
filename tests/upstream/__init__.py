"""Tests of `toolbridge.upstream`."""
