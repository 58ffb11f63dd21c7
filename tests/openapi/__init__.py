"""Tests of `toolbridge.openapi`."""
