"""Small kit functions the lessons' claims rest on (issue 12): configs printed as their difference
from the defaults, and the preference plot labelling each axis with what it draws."""
from kit.train import TrainConfig, diagnostics


def test_non_defaults_lists_only_changed_settings():
    assert TrainConfig().non_defaults() == {}
    config = TrainConfig(lora_rank=16, learning_rate=1e-4)
    assert config.non_defaults() == {"learning_rate": 1e-4, "lora_rank": 16}
    assert "ppo_buffer_size" not in config.non_defaults() and "galore_rank" not in config.non_defaults()


def test_preference_plot_labels_a_kl_only_axis_as_kl():
    kl_only = [{"step": 1, "loss": 1.0, "kl": 0.1}, {"step": 2, "loss": 0.9, "kl": 0.2}]
    labels = [axis.get_ylabel() for axis in diagnostics.plot_preference(kl_only).axes]
    assert "KL (nats)" in labels and "share of pairs with chosen > rejected" not in labels
    with_accuracy = [dict(e, **{"rewards/accuracies": 0.5}) for e in kl_only]
    labels = [axis.get_ylabel() for axis in diagnostics.plot_preference(with_accuracy).axes]
    assert "share of pairs with chosen > rejected" in labels and "KL (nats)" in labels
