"""Models (Qt-free): the paper's autoencoder and Param-Net, and the physics-informed net."""

from .autoencoder import Autoencoder, Decoder, Encoder
from .paramnet import ParamNet
from .reparam import ReparamNet, from_model_range, parameter_vector, to_model_range, xavier_init_

__all__ = ["Autoencoder", "Decoder", "Encoder", "ParamNet", "ReparamNet", "from_model_range",
           "parameter_vector", "to_model_range", "xavier_init_"]
