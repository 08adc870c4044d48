import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('triggers', '0006_delivery_cancelled'),
    ]

    operations = [
        migrations.CreateModel(
            name='ClusterCheck',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('ran_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('ok', models.BooleanField()),
                ('probe', models.BooleanField(default=False)),
                ('results', models.JSONField(default=list)),
            ],
            options={
                'ordering': ['-ran_at', '-pk'],
            },
        ),
    ]
