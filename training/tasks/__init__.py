"""Fine-tuning tasks behind one protocol: classification, pairs, token classification, QA."""

from training.tasks.base import Task
from training.tasks.classification import ClassificationTask
from training.tasks.question_answering import QuestionAnsweringTask, answer_question
from training.tasks.regression import RegressionTask
from training.tasks.token_classification import TokenClassificationTask, extract_entities

__all__ = [
    "ClassificationTask",
    "QuestionAnsweringTask",
    "RegressionTask",
    "Task",
    "TokenClassificationTask",
    "answer_question",
    "extract_entities",
]
