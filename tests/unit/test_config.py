import config


def test_defaults_name_the_local_images_and_the_tier_table(settings):
    assert (settings.host, settings.port) == ("0.0.0.0", 5000)
    free, premium = settings.tiers["free"], settings.tiers["premium"]
    assert (free.namespace, free.model, free.image) == ("free-service", "ff", "img-classification-ff:local")
    assert (premium.namespace, premium.model, premium.image) == ("default", "cnv",
                                                                 "img-classification-cnv:local")
    assert (settings.cpu, settings.memory) == ("900m", "1536Mi")


def test_registry_and_tag_prefix_both_images(tmp_path):
    settings = config.load(environ={"IMAGE_REGISTRY": "docker.io/me/", "IMAGE_TAG": "v2"},
                           env_file=tmp_path / "none")
    assert settings.tiers["free"].image == "docker.io/me/img-classification-ff:v2"
    assert settings.tiers["premium"].image == "docker.io/me/img-classification-cnv:v2"


def test_service_env_applies_unless_the_environment_overrides_it(tmp_path):
    env_file = tmp_path / "service.env"
    env_file.write_text("# written by setup.sh eks up\nFREE_IMAGE=ecr/ff:1\nPREMIUM_IMAGE=ecr/cnv:1\n")
    settings = config.load(environ={"PREMIUM_IMAGE": "mine/cnv:2"}, env_file=env_file)
    assert settings.tiers["free"].image == "ecr/ff:1"
    assert settings.tiers["premium"].image == "mine/cnv:2"


def test_queue_handoff_is_on_unless_turned_off(tmp_path):
    assert config.load(environ={}, env_file=tmp_path / "none").queue_handoff is True
    assert config.load(environ={"QUEUE_HANDOFF": "0"}, env_file=tmp_path / "none").queue_handoff is False
