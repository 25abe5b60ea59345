"""Fine-tuning tasks behind one protocol: classification, pairs, token classification, QA,
and classification with NER on one encoder."""

from training.tasks.base import Task, TaskLoss
from training.tasks.classification import ClassificationTask
from training.tasks.multitask import ClassifyAndTagTask, TextsAndSentences
from training.tasks.question_answering import QuestionAnsweringTask, answer_question
from training.tasks.regression import RegressionTask
from training.tasks.token_classification import TokenClassificationTask, extract_entities

__all__ = [
    "ClassificationTask",
    "ClassifyAndTagTask",
    "QuestionAnsweringTask",
    "RegressionTask",
    "Task",
    "TaskLoss",
    "TextsAndSentences",
    "TokenClassificationTask",
    "answer_question",
    "extract_entities",
]
