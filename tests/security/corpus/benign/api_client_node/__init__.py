"""Describe an image with the (fictional) Acme Vision API: reads its one configured key and calls that API."""

from .client import AcmeVisionClient

CONFIG_KEY = "ACME_VISION_API_KEY"


class AcmeDescribeImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image_url": ("STRING", {"default": ""}),
                             "detail": (["low", "high"],)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "describe"
    CATEGORY = "acme/vision"

    def describe(self, image_url, detail):
        client = AcmeVisionClient.from_environment()
        return (client.describe(image_url, detail=detail),)


NODE_CLASS_MAPPINGS = {"AcmeDescribeImage": AcmeDescribeImage}
NODE_DISPLAY_NAME_MAPPINGS = {"AcmeDescribeImage": "Describe Image (Acme Vision)"}
