import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmdynamixer  # noqa: F401


def make_head(**kwargs):
    cfg = dict(type='DynaMixerClsHead', num_classes=5, in_channels=8)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def expected_logits(head, feat):
    tokens = feat.flatten(2).transpose(1, 2)
    normed = F.layer_norm(tokens, (8, ), head.norm.weight, head.norm.bias,
                          1e-5)
    return normed.mean(1) @ head.fc.weight.T + head.fc.bias


def test_forward_is_norm_mean_linear():
    head = make_head()
    torch.nn.init.normal_(head.norm.weight)
    torch.nn.init.normal_(head.norm.bias)
    feat = torch.randn(3, 8, 4, 5)
    torch.testing.assert_close(head((torch.randn(3, 4, 2, 2), feat)),
                               expected_logits(head, feat))


def test_loss_with_hard_labels():
    head = make_head(cal_acc=True)
    feat = torch.randn(4, 8, 2, 2)
    labels = [1, 0, 4, 2]
    samples = [DataSample().set_gt_label(l) for l in labels]
    losses = head.loss((feat, ), samples)
    expected = F.cross_entropy(expected_logits(head, feat),
                               torch.tensor(labels))
    torch.testing.assert_close(losses['loss'], expected)
    hits = (expected_logits(head, feat).argmax(-1) == torch.tensor(labels))
    torch.testing.assert_close(losses['accuracy_top-1'][0].squeeze(),
                               hits.float().mean() * 100)


def test_loss_with_soft_labels_of_mixup():
    head = make_head(loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                               mode='original'))
    feat = torch.randn(2, 8, 2, 2)
    scores = torch.tensor([[0.7, 0.3, 0, 0, 0], [0, 0, 0.4, 0, 0.6]])
    samples = [DataSample().set_gt_score(s) for s in scores]
    losses = head.loss((feat, ), samples)
    smoothed = scores * 0.9 + 0.1 / 5
    expected = -(smoothed * expected_logits(head, feat).log_softmax(-1)) \
        .sum(-1).mean()
    torch.testing.assert_close(losses['loss'], expected)
    losses['loss'].backward()
    assert head.fc.weight.grad is not None


def test_predict():
    head = make_head()
    feat = torch.randn(3, 8, 2, 2)
    preds = head.predict((feat, ))
    logits = expected_logits(head, feat)
    for pred, row in zip(preds, logits):
        torch.testing.assert_close(pred.pred_score, row.softmax(-1))
        assert pred.pred_label.item() == row.argmax().item()


def test_bad_input():
    head = make_head()
    with pytest.raises(ValueError, match=r'\(B, 8, H, W\)'):
        head((torch.randn(2, 6, 2, 2), ))
    with pytest.raises(ValueError, match='must be an int >= 1'):
        make_head(num_classes=0)


def test_classifier_trains_on_mixup_cutmix_soft_labels():
    """The real batch augments of the ImageNet configs produce gt_score;
    the classifier's loss uses them and gradients reach the backbone."""
    from mmdx_testing import TINY
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=TINY,
        head=dict(type='DynaMixerClsHead', num_classes=5, in_channels=32,
                  loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                            mode='original')),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=5),
        train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8),
                                 dict(type='CutMix', alpha=1.0)])))
    model.init_weights()
    data = dict(inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)
                        for _ in range(4)],
                data_samples=[DataSample().set_gt_label(i % 5)
                              for i in range(4)])
    batch = model.data_preprocessor(data, training=True)
    scores = torch.stack([s.gt_score for s in batch['data_samples']])
    assert scores.shape == (4, 5)
    torch.testing.assert_close(scores.sum(-1), torch.ones(4))
    assert (scores.max(-1).values < 1).any()  # really mixed
    losses = model(**batch, mode='loss')
    losses['loss'].backward()
    assert model.backbone.downsample_layers[0].weight.grad.abs().sum() > 0
