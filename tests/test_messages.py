"""Messages for people: articles and sequence names read as a person writes them."""

from napari_mr_reparam.messages import sequence_words, with_article


def test_sequences_are_named_with_the_article_their_sound_takes():
    said = [with_article(sequence_words(s)) for s in ("spin_echo", "inversion_recovery", "mprage",
                                                      "gradient_echo")]
    assert said == ["a spin echo", "an inversion recovery", "an MPRAGE", "a gradient echo"]
    assert with_article("RGB image") == "an RGB image" and with_article("PNG") == "a PNG"
