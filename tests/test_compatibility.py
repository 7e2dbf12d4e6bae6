"""fxkit._compatibility, fxkit.experimental._config and node.ArgumentT against torch.fx's."""

from __future__ import annotations

import torch.fx._compatibility as oracle_compat
import torch.fx.experimental._config as oracle_config
import torch.fx.node as oracle_node

import fxkit
import fxkit._compatibility as ours_compat
import fxkit.experimental._config as ours_config
import fxkit.node as ours_node


def test_compatibility_marks_record_the_same_objects():
    for compat in (oracle_compat, ours_compat):

        def stable():
            pass

        def unstable():
            pass

        assert compat.compatibility(is_backward_compatible=True)(stable) is stable
        assert compat.compatibility(is_backward_compatible=False)(unstable) is unstable
        assert stable in compat._BACK_COMPAT_OBJECTS and stable in compat._MARKED_WITH_COMPATIBILITY
        assert unstable not in compat._BACK_COMPAT_OBJECTS and unstable in compat._MARKED_WITH_COMPATIBILITY


def test_config_patch_works_as_decorator_and_restores():
    for config in (oracle_config, ours_config):

        @config.patch("enrich_profiler_metadata", True)
        def inside():
            return config.enrich_profiler_metadata

        assert inside() is True
        assert config.enrich_profiler_metadata is False
        assert config.get_config_copy()["enrich_profiler_metadata"] is False


def test_config_is_an_attribute_after_import():
    assert fxkit.experimental._config is ours_config


def test_argument_type_variable_is_bound_to_argument():
    assert ours_node.ArgumentT.__bound__ == ours_node.Argument
    assert oracle_node.ArgumentT.__name__ == ours_node.ArgumentT.__name__
