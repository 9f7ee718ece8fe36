# Generated for issue 14 item 9: the heartbeat of long-running work and its reaper.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0008_training'),
    ]

    operations = [
        migrations.CreateModel(
            name='WorkHeartbeat',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=200, unique=True)),
                ('task_name', models.CharField(max_length=200)),
                ('args', models.JSONField(default=list)),
                ('worker', models.CharField(blank=True, default='', max_length=200)),
                ('started_at', models.DateTimeField()),
                ('beat_at', models.DateTimeField(db_index=True)),
                ('requeues', models.PositiveIntegerField(default=0)),
            ],
        ),
    ]
