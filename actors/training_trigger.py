"""Training triggered by new features: when a dataset with a configured training
trigger gets a new feature batch (``features.generated``), a ``train.models`` command
naming that feature set goes out through the outbox (once per feature batch)."""

from __future__ import annotations

from actors.partition_worker import PartitionWorker
from messages.base import caused_by
from messages.codec import encode
from messages.features import FeaturesGenerated
from messages.training import TrainModels
from storage.base import BatchEffects
from storage.kafka import Record
from storage.settings import Settings


class TrainingTrigger(PartitionWorker):
    consumer = "training-trigger"

    def __init__(self, settings: Settings, name: str, topic: str = "features.generated", partition: int = 0) -> None:
        super().__init__(settings, name, topic, partition)

    async def handle(self, records: list[Record]) -> BatchEffects:
        effects = BatchEffects()
        for record in records:
            event = self.expect(record, effects, FeaturesGenerated)
            if event is None:
                continue
            config = await self.pool.fetchval("SELECT config_toml FROM training_triggers WHERE dataset = $1",
                                              event.dataset)
            if config is None:
                continue
            command = TrainModels(config_toml=config, feature_set_id=event.feature_set_id, **caused_by(event))
            effects.outbox.append(("train", event.dataset.encode(), encode(command),
                                   f"trigger:{event.dataset}:{event.feature_set_id}:{event.batch_id}"))
            self.log.info("training triggered", dataset=event.dataset, feature_set=event.feature_set_id,
                          batch=event.batch_id)
        return effects
