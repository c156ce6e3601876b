"""A prototype learner as one step with explicit state: the kind of module a user brings to edgemeta.

Each class is the running mean of the embeddings shown with its label; an image is scored by its
distance to each mean. The label of an image arrives one step late (with the next image), so the
state also keeps the previous image's embedding until its label comes.

Train it: edgemeta train --model examples/custom_learner/prototype_learner.py:PrototypeLearner --data DIR ...
"""
import torch
from torch import nn


class PrototypeLearner(nn.Module):
    def __init__(self, num_classes: int, image_size: int, embedding: int = 32):
        super().__init__()
        self.num_classes, self.embedding = num_classes, embedding
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(image_size * image_size, 128), nn.ReLU(),
                                   nn.Linear(128, embedding))
        self.scale = nn.Parameter(torch.tensor(1.0))  # how sharply distance turns into confidence
        self.unseen = nn.Parameter(torch.tensor(-5.0))  # the logit of a class with no example yet

    def state_shapes(self):
        return {"sums": (self.num_classes, self.embedding), "counts": (self.num_classes,),
                "previous": (self.embedding,)}

    def step(self, image, prev_label, state):
        # the previous image's embedding joins the class its label (now arriving) names
        sums = state["sums"] + prev_label.unsqueeze(2) * state["previous"].unsqueeze(1)
        counts = state["counts"] + prev_label
        e = self.embed(image)
        means = sums / counts.clamp(min=1.0).unsqueeze(2)
        distance = ((e.unsqueeze(1) - means) ** 2).sum(2)
        seen = counts.clamp(max=1.0)  # 0 for a class not shown yet, 1 after
        logits = seen * (-self.scale * distance) + (1 - seen) * self.unseen
        return logits, None, {"sums": sums, "counts": counts, "previous": e}
