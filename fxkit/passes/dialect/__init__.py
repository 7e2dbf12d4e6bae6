"""Passes for graphs in a particular operator dialect (torch.fx's ``passes.dialect``)."""
