"""Distillation losses shared by methods: logit KD, DAKD (He & Zhu, CVPR 2024) and
feature distillation.

All return the *unweighted* loss; the caller multiplies by its weight (DGR: lambda_kd * T^2).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ENTROPY_EPS = 1e-3   # the official DGR code's smoothing of the lost-data distribution (``measure_imbalance``)
EPS = 1e-12


def logit_kd(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """KL(softmax(teacher/T) || softmax(student/T)), mean over the batch (Hinton et al.)."""
    log_p = F.log_softmax(student.float() / temperature, dim=1)
    q = F.softmax(teacher.float() / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean")


def lost_data_entropy(lost: torch.Tensor) -> torch.Tensor:
    """H_n: normalised entropy of the lost-data distribution p_j = (k_j + 0.001) / sum(k + 0.001).

    1 when every old class lost the same amount; 0 when one class lost everything. With a single old
    class log(C_old) = 0 and H_n is defined as 1 (then DAKD is plain KD) - the official code divides by 0.
    """
    num = lost.numel()
    if num <= 1:
        return lost.new_ones((), dtype=torch.float32)          # made on the device: no host copy
    p = (lost.float() + ENTROPY_EPS) / (lost.float() + ENTROPY_EPS).sum()
    return -(p * p.log()).sum() / math.log(num)


def dakd(student: torch.Tensor, teacher: torch.Tensor, lost: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """Distribution-aware KD (He & Zhu, CVPR 2024), the unweighted soft cross-entropy L_DAKD, as the
    official DGR code computes it (``DGR._DAKD``).

    ``lost`` k_j = N_j - exemplars_j: training images old class j lost to the memory budget.
    w = k / ||k||_2 (epsilon-guarded: all-zero k gives w = 0); z~ = w z_s + (1 - w) z_t;
    L = -(1/B) sum_b sum_j q_bj [H_n log softmax(z_s/T)_j + (1 - H_n) log softmax(z~/T)_j], q = softmax(z_t/T).
    Its gradients equal KL's when H_n = 1; the value exceeds KL by the teacher entropy.
    """
    student, teacher = student.float(), teacher.float()
    h = lost_data_entropy(lost)
    w = lost.float() / torch.linalg.vector_norm(lost.float()).clamp_min(EPS)
    mixed = w * student + (1 - w) * teacher
    q = F.softmax(teacher / temperature, dim=1)
    plain = (q * F.log_softmax(student / temperature, dim=1)).sum(1)
    aware = (q * F.log_softmax(mixed / temperature, dim=1)).sum(1)
    return -(h * plain + (1 - h) * aware).mean()


def feature_distillation(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """LUCIR's less-forget term: mean over the batch of 1 - cos(f_student, f_teacher)."""
    cos = F.cosine_similarity(student_features.float(), teacher_features.float(), dim=1)
    return (1 - cos).mean()
