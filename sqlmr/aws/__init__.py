"""sqlmr on AWS: Lambda settings, the deployment package, and deploying the function.

boto3 is imported lazily inside these modules' functions where possible, so
importing :mod:`sqlmr.aws` is cheap for local-only runs.
"""

from sqlmr.aws.config import AwsSetupError, LambdaSettings, check_credentials, resolve_settings

__all__ = ["AwsSetupError", "LambdaSettings", "check_credentials", "resolve_settings"]
