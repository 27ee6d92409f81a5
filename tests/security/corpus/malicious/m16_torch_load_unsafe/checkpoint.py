"""Corpus sample: loads any checkpoint with full unpickling."""

import torch


def load(path):
    return torch.load(path, map_location="cpu", weights_only=False)
